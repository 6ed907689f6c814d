# cpi.py: the mpi4py program that main.go ports (mpiexec -n 4 python cpi.py).
from mpi4py import MPI
import math

comm = MPI.COMM_WORLD
n = comm.bcast(1_000_000 if comm.rank == 0 else None, root=0)
h, s = 1.0 / n, 0.0
for i in range(comm.rank, n, comm.size):
    x = h * (i + 0.5)
    s += 4.0 / (1.0 + x * x)
pi = comm.allreduce(s * h, op=MPI.SUM)
if abs(pi - math.pi) > 1e-9:
    raise SystemExit(f"cpi: pi = {pi} is wrong")
elif comm.rank == 0:
    print(f"cpi: OK: pi = {pi:.12f} from {n} intervals over {comm.size} ranks")
