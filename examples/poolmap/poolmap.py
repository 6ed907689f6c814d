# poolmap.py: the multiprocessing program that main.go ports (python poolmap.py).
from multiprocessing import Pool

def collatz(n):
    steps = 0
    while n != 1:
        n = n // 2 if n % 2 == 0 else 3 * n + 1
        steps += 1
    return steps

if __name__ == "__main__":
    with Pool(4) as pool:
        steps = pool.map(collatz, range(1, 10001))
    if steps[26] != 111 or max(steps) != 261 or steps.index(261) != 6170:
        raise SystemExit(f"poolmap: 27 takes {steps[26]} steps (want 111), the longest {max(steps)} (want 261)")
    print(f"poolmap: OK: {len(steps)} numbers over 4 processes, the longest: 6171 in 261 steps")
