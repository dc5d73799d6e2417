"""The GRU4Rec network, its ranking losses and the model directory (configuration, vocabulary, weights)."""
