# futures.py: the mpi4py.futures program that main.go ports (mpiexec -n 4 python -m mpi4py.futures futures.py).
from concurrent.futures import FIRST_COMPLETED, wait
from mpi4py.futures import MPIPoolExecutor
import math

def simpson(a, b):
    return (b - a) / 6 * (math.sqrt(a) + 4 * math.sqrt((a + b) / 2) + math.sqrt(b))

def task(iv):
    a, b, tol = iv
    m = (a + b) / 2
    return iv, simpson(a, b), simpson(a, m) + simpson(m, b)

if __name__ == "__main__":
    with MPIPoolExecutor() as ex:
        pending, total, count = {ex.submit(task, (0.0, 1.0, 1e-10))}, 0.0, 0
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for f in done:
                (a, b, tol), whole, halves = f.result()
                count += 1
                if abs(halves - whole) <= 15 * tol:
                    total += halves + (halves - whole) / 15
                else:
                    m = (a + b) / 2
                    pending |= {ex.submit(task, (a, m, tol / 2)), ex.submit(task, (m, b, tol / 2))}
    if abs(total - 2 / 3) > 1e-9:
        raise SystemExit(f"futures: integral = {total}, want 2/3")
    print(f"futures: OK: the integral of sqrt(x) over [0, 1] = {total:.10f} from {count} intervals")
