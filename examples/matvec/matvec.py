# matvec.py: the mpi4py program that main.go ports (mpiexec -n 4 python matvec.py).
from mpi4py import MPI
import numpy as np

comm = MPI.COMM_WORLD
n = 3 * comm.size
rows, x = None, None
if comm.rank == 0:
    A = np.arange(n * n, dtype=float).reshape(n, n)
    rows, x = np.split(A, comm.size), np.ones(n)
mine = comm.scatter(rows, root=0)
x = comm.bcast(x, root=0)
y = comm.gather(mine @ x, root=0)
if comm.rank == 0:
    y = np.concatenate(y)
    if not np.array_equal(y, A @ x):
        raise SystemExit(f"matvec: y = {y}, want {A @ x}")
    print(f"matvec: OK: {n}x{n} matrix over {comm.size} ranks, y[{n - 1}] = {y[-1]}")
