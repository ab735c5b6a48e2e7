"""Finding clips (index), decoding them (video) and turning them into the cache (preprocess)."""
