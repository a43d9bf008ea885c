"""GPU (NVML) and host (psutil) monitoring, UI-free.

sample.py (frozen samples, NA), nvml.py (NvmlSampler), host.py (HostSampler, TopProcesses),
history.py (ring buffers), record.py (record/replay), jobs_link.py (GPU pid -> run, stalls),
sampler_thread.py (sources and the background thread). Nothing here imports pynvml at import
time.
"""
