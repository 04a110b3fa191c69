"""The execution path: sweeps from the database run as Ray Tune experiments.

Data flow: ``runner`` claims a sweep (``store``), turns its spec into packs (``search``,
``packing``), and runs a Tuner whose function trainable (``trainable``) trains each pack with
an engine (``engines``) through ``l0models`` (``spec_adapter``); the driver-side ``callback``
writes every result back through ``store``. ``protocol`` is the pack contract they share;
``cluster`` connects to (or starts) Ray.

Modules are imported on use (``from workers.tune.runner import Runner``) so that
``l0sweep --help`` does not import Ray or torch.
"""
