# producers.py: the multiprocessing program that main.go ports (python producers.py; not queue.py,
# which would hide the standard library's queue module from multiprocessing).
from multiprocessing import Process, Queue

def producer(q, k):
    for i in range(1000):
        q.put(k * 1000 + i)

def consumer(q, out):
    total, count = 0, 0
    while (item := q.get()) is not None:
        total, count = total + item, count + 1
    out.put((total, count))

if __name__ == "__main__":
    q, out = Queue(maxsize=100), Queue()
    producers = [Process(target=producer, args=(q, k)) for k in (0, 2)]
    consumers = [Process(target=consumer, args=(q, out)) for _ in range(4)]
    for p in producers + consumers:
        p.start()
    for p in producers:
        p.join()
    for _ in consumers:
        q.put(None)  # one stop per consumer
    got = [out.get() for _ in consumers]
    total, count = sum(t for t, _ in got), sum(c for _, c in got)
    if (total, count) != (sum(range(1000)) + sum(range(2000, 3000)), 2000):
        raise SystemExit(f"queue: got {count} items adding up to {total}")
    print(f"queue: OK: {count} items from 2 producers, got by 4 processes")
