"""Next-item recommendation over large catalogs: SASRec with full, sampled and cut cross-entropy losses."""
