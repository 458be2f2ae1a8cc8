"""Stand-in for atom.utils: CpuGpuBuffer (a host staging buffer with a device copy)."""
import torch


class CpuGpuBuffer:
    def __init__(self, *shape, dtype=torch.int32):
        self.cpu = torch.zeros(*shape, dtype=dtype)
        self.gpu = torch.zeros(*shape, dtype=dtype)

    def copy_to_gpu(self, n):
        self.gpu[:n].copy_(self.cpu[:n])
        return self.gpu[:n]
