"""Host commands, one module per family. Each module declares ``Command`` objects (spec +
handler); ``hsm_sim.dispatcher`` is the one place that lists which codes are served."""
