"""Florence-2 captioning: the captioner, caption checks, the caption job and source captions."""
