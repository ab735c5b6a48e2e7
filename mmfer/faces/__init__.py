"""Face detection, 68-point landmarks, tracking one person through a clip, and alignment."""
