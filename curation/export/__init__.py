"""Export: the curated set as WebDataset shards or an imagefolder, with manifest and datasheet."""
