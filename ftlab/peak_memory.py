"""The most memory a block of code adds while it runs: the one probe lessons 04 and 07 measure training with."""
import ctypes
import gc
import sys

import torch

M_MMAP_THRESHOLD = -3  # glibc's mallopt() parameter number for MALLOC_MMAP_THRESHOLD_
LINUX = sys.platform.startswith("linux")


def process_status(key):
    """A line of /proc/self/status in bytes: "VmRSS:" (resident now) or "VmHWM:" (its peak)."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(key))


class PeakMemory:
    """`with PeakMemory(device) as peak: trainer.train()`; then `peak.used` is the most memory the block added
    over what was in use when it began (`peak.start`), in bytes; None where it cannot be measured.

    GPU: torch counts every tensor it allocates; its peak counter is reset at the start.
    CPU (Linux): the process's resident memory. The kernel's peak (VmHWM) is reset at the start. With `return_freed`
    (the default) glibc is first asked to return every freed block of 64 KiB or more to the system at once (what
    MALLOC_MMAP_THRESHOLD_ does for a new process), and the free blocks malloc already holds are handed back
    (malloc_trim): otherwise freed tensors stay in the process, and a run after a bigger one would reuse them and
    seem to take no memory (CI saw exactly 0 for a 40 MiB block). Lesson 04's measuring process sets malloc up as
    it starts instead, to show that effect both ways.
    Elsewhere (macOS, Windows) the peak cannot be reset: None.
    """

    def __init__(self, device, return_freed=True):
        self.device = device
        self.return_freed = return_freed
        self.start = self.used = None

    def __enter__(self):
        gc.collect()
        if self.device == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.start = torch.cuda.memory_allocated()
        elif LINUX:
            if self.return_freed:
                libc = ctypes.CDLL(None)
                libc.mallopt(M_MMAP_THRESHOLD, 64 * 1024)
                libc.malloc_trim(0)  # free blocks still held by malloc go back too, so reusing one shows as new memory
            self.start = process_status("VmRSS:")
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")  # reset the peak (VmHWM) to the memory in use now
        return self

    def __exit__(self, *exc):
        if self.device == "cuda":
            torch.cuda.synchronize()
            self.used = torch.cuda.max_memory_allocated() - self.start
        elif LINUX:
            self.used = process_status("VmHWM:") - self.start
        return False
