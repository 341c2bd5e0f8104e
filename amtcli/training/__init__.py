"""Training: one run skeleton (:mod:`.solver`: resume, seeds, precision, checkpoints, metrics, DDP)
that every model's training plugs into (:mod:`.loop` the U-Net, :mod:`.seq2seq` the token
Transformer, :mod:`.embedding` the joint embedding); :mod:`.launch` runs it on one or several
processes; :mod:`.checkpoints` owns the run folder; :mod:`.finetune` is the fine-tuning recipe;
data, losses, noise rounds and threshold calibration beside them."""
