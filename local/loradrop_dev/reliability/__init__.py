"""Fault and load scenarios on the local stack, and the report `make reliability` writes.

Each scenario injects something (a burst, duplicates, WaveSpeed faults, crashes between steps),
then checks what a user would: every upload in exactly one expected *terminal* state (a job left
SUBMITTING or STORING is a failure), the tasks WaveSpeed created equal to the attempts the jobs
count (nobody billed twice, nothing unaccounted), and so the inference tasks of sample images to the
attempts their rows count, the weights objects and their checksums, no orphan multipart uploads.
The tests run every scenario at the "fast" scale; `make reliability` runs "full". `harness` (the
stack and the judging; the samples' in `sample_counts`), `scenarios` (the registry and the scales)
with the scenarios by theme: `load`, `wavespeed_faults`, `recovery`, `busy_account`; `tiers` (bursts
on stacks deployed per WaveSpeed tier), `hostile` (hostile inputs), `report`, `__main__`.
"""
