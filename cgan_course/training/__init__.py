"""Training a conditional GAN, one file per concept:

    config.py     TrainConfig: every option, its range, its CLI flag
    state.py      TrainState: what a step changes and a checkpoint saves; where it runs
    step.py       the step a learner reads: the loss object, the D and G phases, EMA
    loop.py       train(cfg): data, the loop, logging, stopping, multi-GPU
    runfolder.py  the run folder: its training log and the checks before a run starts
    resume.py     checkpoints, exact resume, the compact training state for fine-tunes
    cli.py        python -m cgan_course.train
"""
from .cli import config_from_args, main
from .config import MAX_STEPS, RESUME_MAY_CHANGE, TrainConfig, resolved_loss
from .loop import TrainResult, train
from .resume import (
                     CHECKPOINT_FORMAT,
                     TRAIN_STATE_FORMAT,
                     TRAIN_STATE_KEYS,
                     TRAINING_KEYS,
                     check_resume_config,
                     check_training_schema,
                     data_fingerprint,
                     init_from_train_state,
                     load_generator_from_checkpoint,
                     load_train_state,
                     save_train_state,
)
from .runfolder import LOG_FIELDS, TrainingDiverged, check_run_folder
from .state import Placement, TrainState, unwrap
from .step import (
                     EMA,
                     GANLoss,
                     calibrated,
                     d_phase,
                     discriminate,
                     g_phase,
                     gan_step,
                     latents,
)

__all__ = ['CHECKPOINT_FORMAT', 'EMA', 'GANLoss', 'LOG_FIELDS', 'MAX_STEPS', 'Placement', 'RESUME_MAY_CHANGE',
           'TRAINING_KEYS', 'TRAIN_STATE_FORMAT', 'TRAIN_STATE_KEYS', 'TrainConfig', 'TrainResult',
           'TrainState', 'TrainingDiverged', 'calibrated', 'check_resume_config',
           'check_run_folder', 'check_training_schema', 'config_from_args', 'd_phase',
           'data_fingerprint', 'discriminate', 'g_phase', 'gan_step', 'init_from_train_state',
           'latents', 'load_generator_from_checkpoint', 'load_train_state', 'main', 'resolved_loss',
           'save_train_state', 'train', 'unwrap']
