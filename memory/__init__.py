"""Memory: the owner's past exchanges (what someone said, what the owner answered),
indexed as they arrive and recalled when a similar message comes. Between the samples
(dataset) and the engine: it reads history the way the dataset does and feeds prompts."""
