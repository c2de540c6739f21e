"""Benchmark loaders: XQuAD-R and MLQA-R (LAReQA files) and MKQA (official release or the shipped subset)."""

from hybridviz.data.lareqa import BENCHMARKS as LAREQA_BENCHMARKS, LareqaData, load_lareqa
from hybridviz.data.mkqa import MkqaData, MkqaExample, load_mkqa, read_mkqa_file
from hybridviz.data.paths import data_dir, find_file

__all__ = ["LAREQA_BENCHMARKS", "LareqaData", "MkqaData", "MkqaExample", "data_dir", "find_file", "load_lareqa",
           "load_mkqa", "read_mkqa_file"]
