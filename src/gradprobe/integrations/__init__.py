"""Thin wrappers over gradprobe's GradientMonitor for training frameworks (each an optional extra,
imported only when its module is): `lightning.GradientMonitorCallback`,
`hf.GradientMonitorCallback` (a transformers.TrainerCallback), `wandb_writer.WandbWriter`."""
