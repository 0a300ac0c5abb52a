"""xtok_stream: streaming data for cross-tokenizer knowledge distillation.

WebDataset shards on any fsspec store -> packed fixed-length sequences -> student (and teacher)
tokens -> alignment -> batches for every DDP rank, with JSON cursors that resume exactly.
"""

__version__ = "0.1.0"
