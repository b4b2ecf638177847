"""Long Range Arena harness: interchangeable attentions, LRA task data modules, Lightning training."""
