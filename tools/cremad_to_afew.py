#!/usr/bin/env python
"""CREMA-D folder (VideoFlash/ActorID_Sentence_EMO_Level.flv, AudioWAV/*.wav) -> AFEW layout, speaker-disjoint.

Example: python tools/cremad_to_afew.py ~/data/CREMA-D data/cremad_afew --val-fraction 0.2 --audio
"""

import sys

from mmfer.data.corpora import cremad_to_afew, run_tool

if __name__ == "__main__":
    sys.exit(run_tool(cremad_to_afew, None, __doc__.splitlines()[0]))
