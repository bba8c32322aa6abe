import torch

# One torch thread per (xdist worker) process: the suite's tensors are small, and threads
# would only contend for the machine's cores.
torch.set_num_threads(1)
