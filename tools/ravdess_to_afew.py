#!/usr/bin/env python
"""RAVDESS folder (Actor_NN/MM-VC-EE-II-SS-RR-AA.mp4|wav) -> AFEW layout with a speaker-disjoint Val split.

Example: python tools/ravdess_to_afew.py ~/data/RAVDESS data/ravdess_afew --val-actors 1,2,3,4
"""

import sys

from mmfer.data.corpora import ravdess_to_afew, run_tool

if __name__ == "__main__":
    sys.exit(run_tool(ravdess_to_afew, None, __doc__.splitlines()[0]))
