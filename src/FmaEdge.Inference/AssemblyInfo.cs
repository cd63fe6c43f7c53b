// FmaEdge.Inference: see the project Description.
