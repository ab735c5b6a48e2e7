"""The branch networks, each made by a keyword-only builder; ``registry.MODELS`` maps names to builders."""
