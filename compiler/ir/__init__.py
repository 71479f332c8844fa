"""The graph-program IR every pass works on: an FX graph with its constants and symbolic-shape
ranges (`program`), its readable text form (`printer`, `parser`, op and dtype spellings in
`naming`), Graphviz DOT (`dot`) and `.pt2` archives (`pt2`)."""
