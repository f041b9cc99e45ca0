"""Memory: the owner's past exchanges (what someone said, what the owner answered),
indexed as they arrive and recalled when a similar message comes, within a scope.
Between the samples (dataset) and the prompt: it reads history the way the dataset
does, and twin.prompt puts what it recalls into the model's input."""
