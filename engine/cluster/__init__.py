"""Other machines: nodes reached over SSH (OpenSSH with the user's own keys and config) and
SLURM clusters (sbatch, squeue, sacct, scancel). llmdeck has no scheduler or transport of its
own: these modules build the commands people already run, run them, and read their answers."""
