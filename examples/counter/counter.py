# counter.py: the multiprocessing original of examples/counter.
from multiprocessing import Array, Lock, Process, Value

SAMPLES, BINS, N = 1000, 16, 4

def work(me, count, hist, lock, order):
    for i in range(SAMPLES):
        with count.get_lock():
            count.value += 1
        with hist.get_lock():
            hist[(i * 31 + me * 7) % BINS] += 1
    with lock:
        n = order[0]
        order[n + 1] = me
        order[0] = n + 1

if __name__ == "__main__":
    count, hist, lock = Value("q", 0), Array("q", BINS), Lock()
    order = Array("i", N + 1)
    ps = [Process(target=work, args=(r, count, hist, lock, order)) for r in range(N)]
    for p in ps: p.start()
    for p in ps: p.join()
    assert count.value == N * SAMPLES and sum(hist) == N * SAMPLES
    assert sorted(order[1:]) == list(range(N))
    print("counter: OK:", count.value)
