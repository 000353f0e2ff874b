"""Training front end: full-precision training and QAT of Q-SCI models (`python -m training.train`).

Modules: `config` (TrainConfig, presets in `configs/`), `data` (clip streams, simulated
measurements), `checkpointing` (atomic, weights_only-loadable checkpoints), `distributed`
(torchrun / DDP), `train` (the loop), `bench` (training throughput).
"""
