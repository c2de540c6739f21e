"""Figure builders (plotly). Pages call these with artifacts loaded through hybridviz; nothing is computed here."""
