"""Inference: whole videos analysed as streams of segments (``stream``), and the segment outputs (``segments``)."""
