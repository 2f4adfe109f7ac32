"""Board tops and settings for amaranth-boards platforms."""
