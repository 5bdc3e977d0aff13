"""PyTorch and numpy side of eiex: data, models, training, pruning, weight sharing,
Huffman coding and storage accounting. Knows nothing of the hardware."""
