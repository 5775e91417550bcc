"""Samples made elsewhere, brought into a run store: the paper's released samples (the hub
dataset ``ScalingIntelligence/monkey_business``) or the YAML files its generation code
writes, matched to this project's task documents, with the source's verdicts kept."""
