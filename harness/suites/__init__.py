"""Certification suites: many cases (target x profile x faults x seeds), each with an expected answer, run
one after another (or sharded across machines and merged), with one suite.json, junit.xml and suite.html."""
