"""The cpu and real profiles use no network. With FTLAB_NETWORK_LOG naming a file, `ftlab.setup()` checks it.

Every connection to an address outside this machine, and every lookup of another host's name, is then refused with
the OSError a machine without a network gives, and written to the log with the process and the code that asked.
`make test` runs every lesson and exercise, in both profiles, this way and fails when the log is not empty: a
library that catches the error and carries on is still caught. Connections within the machine stay open: Jupyter
talks to its kernels, and lesson 13's processes to one another, over the loopback.
"""
import ipaddress
import os
import socket
import sys
import traceback

_installed = []  # the log's path, once the guard is in place in this process


def is_local(host):
    """Whether a host name or address is this machine."""
    if host in (None, "", "localhost", socket.gethostname()):
        return True
    try:
        address = ipaddress.ip_address(str(host).split("%")[0])
    except ValueError:
        return False
    return address.is_loopback or address.is_unspecified


def install(log_path):
    """Refuse and record every attempt to reach another machine from this process (once per process)."""
    if _installed:
        return
    _installed.append(log_path)
    connect, connect_ex, getaddrinfo, gethostbyname = (socket.socket.connect, socket.socket.connect_ex,
                                                       socket.getaddrinfo, socket.gethostbyname)

    def refuse(what, error=OSError):
        caller = "; ".join(f"{frame.filename}:{frame.lineno}" for frame in traceback.extract_stack()[-7:-2])
        os.makedirs(os.path.dirname(os.path.abspath(log_path)), exist_ok=True)
        with open(log_path, "a") as log:  # one short line per attempt, appended by every process alike
            log.write(f"pid {os.getpid()} ({' '.join(sys.argv[:2])}): {what}, from {caller}\n")
        raise error(f"{what}: refused, the cpu and real profiles run without a network (ftlab.network_guard)")

    def guarded_connect(self, address, _real=connect):
        if self.family in (socket.AF_INET, socket.AF_INET6) and not is_local(address[0]):
            refuse(f"connect to {address!r}")
        return _real(self, address)

    def guarded_connect_ex(self, address):
        return guarded_connect(self, address, _real=connect_ex)

    def guarded_getaddrinfo(host, *args, **kwargs):
        if not is_local(host):
            refuse(f"look up {host!r}", socket.gaierror)  # what a lookup without a network raises
        return getaddrinfo(host, *args, **kwargs)

    def guarded_gethostbyname(host):
        if not is_local(host):
            refuse(f"look up {host!r}", socket.gaierror)
        return gethostbyname(host)

    socket.socket.connect, socket.socket.connect_ex = guarded_connect, guarded_connect_ex
    socket.getaddrinfo, socket.gethostbyname = guarded_getaddrinfo, guarded_gethostbyname
