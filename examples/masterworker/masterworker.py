# masterworker.py: the mpi4py program that main.go ports (mpiexec -n 4 python masterworker.py).
from mpi4py import MPI

WORK, STOP = 1, 2
comm = MPI.COMM_WORLD

def task(n):
    return sum(i * i for i in range(n))

if comm.size < 2:
    raise SystemExit("masterworker: needs at least 2 ranks")
if comm.rank == 0:
    results, nxt, workers = [0] * 1000, 0, comm.size - 1
    status = MPI.Status()
    while workers > 0:
        i, s = comm.recv(source=MPI.ANY_SOURCE, tag=0, status=status)
        if i >= 0:
            results[i] = s
        if nxt < len(results):
            comm.send(nxt, dest=status.source, tag=WORK)
            nxt += 1
        else:
            comm.send(None, dest=status.source, tag=STOP)
            workers -= 1
    for i, s in enumerate(results):
        if s != task(1000 + i):
            raise SystemExit(f"masterworker: task {i}: {s}, want {task(1000 + i)}")
    print(f"masterworker: OK: {len(results)} tasks on {comm.size - 1} workers")
else:
    comm.send((-1, 0), dest=0, tag=0)
    status = MPI.Status()
    while True:
        i = comm.recv(source=0, tag=MPI.ANY_TAG, status=status)
        if status.tag == STOP:
            break
        comm.send((i, task(1000 + i)), dest=0, tag=0)
