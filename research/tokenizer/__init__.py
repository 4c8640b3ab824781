"""Vocabulary expansion: add new pieces to a base SentencePiece BPE model."""
