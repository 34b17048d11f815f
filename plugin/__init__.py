"""The plug-in contract: what a system under test (`target.Target`), a workload (`workload.Workload`) and a runtime
(`runtime.Runtime`) must be, with the types they hand each other (nodes, deployments, profiles, needs, image
layouts, run options). It is its own layer: it imports only `checkers` (for the vocabulary), targets and
workloads import it and nothing of the harness, and the harness imports it and the registries
(`targets`, `workloads`) but no target's or workload's own module. tests/test_architecture.py keeps it so.

Every rule a plug-in must follow is written in docs/adding-a-target.md and docs/adding-a-workload.md.
"""
