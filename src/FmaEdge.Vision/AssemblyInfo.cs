// FmaEdge.Vision: see the project Description.
