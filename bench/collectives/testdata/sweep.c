/*
 * The collectives sweep of bench/collectives (its package doc says what a
 * size is for each operation) with Open MPI's own collectives, for the
 * side-by-side figures of BenchmarkSweep:
 *
 *   mpicc -O2 -o sweep testdata/sweep.c
 *   mpirun -n 8 ./sweep -op all -sizes 8:8388608 -iters 100 -budget 0.25 -warmup 3
 *
 * It times as the Go program does: each rank times every call on its own,
 * with an MPI_Barrier (not timed) between calls; rank 0 decides how many
 * timed calls from its warm-up calls' time and broadcasts it; and rank 0
 * prints, per size, the average over the ranks of their mean time per
 * call, with the smallest and largest mean, in the Go program's result
 * lines. It checks the last call's result, as the Go program does.
 */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *ops_all[] = {"barrier", "bcast", "scatter", "gather", "allgather", "alltoall",
                                "reduce", "allreduce", "reduce_scatter", "scan"};
enum { nops = sizeof ops_all / sizeof ops_all[0] };

static int rank, n;

static void die(const char *msg) {
	fprintf(stderr, "sweep: rank %d: %s\n", rank, msg);
	MPI_Abort(MPI_COMM_WORLD, 1);
}

/* pattern fills b with the bytes rank sends, from byte off of its data. */
static void pattern(unsigned char *b, int from, long off, long size) {
	for (long i = 0; i < size; i++)
		b[i] = (unsigned char)(from * 31 + (off + i) * 7);
}

/* check_blocks: blocks of size bytes, block j from rank from(j) at off(j). */
static void check_blocks(const char *op, unsigned char *got, int blocks, long size, int from_rank, int from_is_j,
                         long off, int off_is_rank) {
	for (int j = 0; j < blocks; j++) {
		int r = from_is_j ? j : from_rank;
		long o = off_is_rank ? (long)rank * size : off;
		for (long i = 0; i < size; i++) {
			if (got[j * size + i] != (unsigned char)(r * 31 + (o + i) * 7)) {
				char msg[128];
				snprintf(msg, sizeof msg, "%s: byte %ld of block %d is wrong", op, i, j);
				die(msg);
			}
		}
	}
}

static void check_sum(const char *op, double *got, long k, long off, int lo, int hi) {
	long m = hi - lo + 1;
	for (long i = 0; i < k; i++) {
		double want = (double)((lo + hi) * m / 2 + m * ((off + i) % 3));
		if (got[i] != want) {
			char msg[128];
			snprintf(msg, sizeof msg, "%s: element %ld is %g, want %g", op, i, got[i], want);
			die(msg);
		}
	}
}

struct call {
	const char *op;
	long size; /* the size the op's row reports */
	long k;    /* float64 elements (reductions) */
	unsigned char *send, *recv;
	double *xs, *out;
	int *counts;
};

static void run(struct call *c) {
	const char *op = c->op;
	if (!strcmp(op, "barrier"))
		MPI_Barrier(MPI_COMM_WORLD);
	else if (!strcmp(op, "bcast"))
		MPI_Bcast(c->recv, (int)c->size, MPI_BYTE, 0, MPI_COMM_WORLD);
	else if (!strcmp(op, "scatter"))
		MPI_Scatter(c->send, (int)c->size, MPI_BYTE, c->recv, (int)c->size, MPI_BYTE, 0, MPI_COMM_WORLD);
	else if (!strcmp(op, "gather"))
		MPI_Gather(c->send, (int)c->size, MPI_BYTE, c->recv, (int)c->size, MPI_BYTE, 0, MPI_COMM_WORLD);
	else if (!strcmp(op, "allgather"))
		MPI_Allgather(c->send, (int)c->size, MPI_BYTE, c->recv, (int)c->size, MPI_BYTE, MPI_COMM_WORLD);
	else if (!strcmp(op, "alltoall"))
		MPI_Alltoall(c->send, (int)c->size, MPI_BYTE, c->recv, (int)c->size, MPI_BYTE, MPI_COMM_WORLD);
	else if (!strcmp(op, "reduce"))
		MPI_Reduce(c->xs, c->out, (int)c->k, MPI_DOUBLE, MPI_SUM, 0, MPI_COMM_WORLD);
	else if (!strcmp(op, "allreduce"))
		MPI_Allreduce(c->xs, c->out, (int)c->k, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
	else if (!strcmp(op, "reduce_scatter"))
		MPI_Reduce_scatter_block(c->xs, c->out, (int)c->k, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
	else if (!strcmp(op, "scan"))
		MPI_Scan(c->xs, c->out, (int)c->k, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
}

/* prepare sets c up for op at size (as the Go program's operation does). */
static void prepare(struct call *c, const char *op, long size) {
	memset(c, 0, sizeof *c);
	c->op = op;
	c->size = size;
	long bytes_send = 0, bytes_recv = 0;
	if (!strcmp(op, "bcast")) {
		bytes_recv = size;
	} else if (!strcmp(op, "scatter")) {
		bytes_send = rank == 0 ? (long)n * size : 0;
		bytes_recv = size;
	} else if (!strcmp(op, "gather")) {
		bytes_send = size;
		bytes_recv = rank == 0 ? (long)n * size : 0;
	} else if (!strcmp(op, "allgather")) {
		bytes_send = size;
		bytes_recv = (long)n * size;
	} else if (!strcmp(op, "alltoall")) {
		bytes_send = (long)n * size;
		bytes_recv = (long)n * size;
	} else if (!strcmp(op, "reduce_scatter")) {
		c->k = size / 8 / n;
		if (c->k < 1)
			c->k = 1;
		c->size = c->k * n * 8;
		c->xs = malloc(c->k * n * sizeof(double));
		c->out = malloc(c->k * sizeof(double));
		for (long i = 0; i < c->k * n; i++)
			c->xs[i] = rank + i % 3;
		return;
	} else if (strcmp(op, "barrier")) { /* reduce, allreduce, scan */
		c->k = size / 8;
		if (c->k < 1)
			c->k = 1;
		c->size = c->k * 8;
		c->xs = malloc(c->k * sizeof(double));
		c->out = malloc(c->k * sizeof(double));
		for (long i = 0; i < c->k; i++)
			c->xs[i] = rank + i % 3;
		return;
	}
	c->send = malloc(bytes_send + 1);
	c->recv = malloc(bytes_recv + 1);
	if (!strcmp(op, "bcast")) {
		if (rank == 0)
			pattern(c->recv, 0, 0, size);
	} else if (!strcmp(op, "scatter")) {
		if (rank == 0)
			pattern(c->send, 0, 0, (long)n * size);
	} else {
		pattern(c->send, rank, 0, bytes_send);
	}
}

static void check(struct call *c) {
	const char *op = c->op;
	long size = c->size;
	if (!strcmp(op, "bcast"))
		check_blocks(op, c->recv, 1, size, 0, 0, 0, 0);
	else if (!strcmp(op, "scatter"))
		check_blocks(op, c->recv, 1, size, 0, 0, 0, 1);
	else if (!strcmp(op, "gather")) {
		if (rank == 0)
			check_blocks(op, c->recv, n, size, 0, 1, 0, 0);
	} else if (!strcmp(op, "allgather"))
		check_blocks(op, c->recv, n, size, 0, 1, 0, 0);
	else if (!strcmp(op, "alltoall"))
		check_blocks(op, c->recv, n, size, 0, 1, 0, 1);
	else if (!strcmp(op, "reduce")) {
		if (rank == 0)
			check_sum(op, c->out, c->k, 0, 0, n - 1);
	} else if (!strcmp(op, "allreduce"))
		check_sum(op, c->out, c->k, 0, 0, n - 1);
	else if (!strcmp(op, "scan"))
		check_sum(op, c->out, c->k, 0, 0, rank);
	else if (!strcmp(op, "reduce_scatter"))
		check_sum(op, c->out, c->k, (long)rank * c->k, 0, n - 1);
	free(c->send);
	free(c->recv);
	free(c->xs);
	free(c->out);
}

/* timed makes k calls, each after a barrier, and returns their time. */
static double timed(struct call *c, long k) {
	double total = 0;
	for (long i = 0; i < k; i++) {
		MPI_Barrier(MPI_COMM_WORLD);
		double t = MPI_Wtime();
		run(c);
		total += MPI_Wtime() - t;
	}
	return total;
}

static void sweep(const char *op, long *sizes, int nsizes, long iters, int warmup, double budget) {
	long zero = 0;
	if (!strcmp(op, "barrier")) {
		sizes = &zero;
		nsizes = 1;
	}
	for (int s = 0; s < nsizes; s++) {
		struct call c;
		prepare(&c, op, sizes[s]);
		double warm = timed(&c, warmup);
		long k = iters;
		if (budget > 0 && warmup > 0) {
			double per = warm / warmup;
			if (per > 0) {
				k = (long)(budget / per);
				if (k < 1)
					k = 1;
				if (k > iters)
					k = iters;
			}
			MPI_Bcast(&k, 1, MPI_LONG, 0, MPI_COMM_WORLD);
		}
		double mean = timed(&c, k) / k * 1e6;
		double *means = rank == 0 ? malloc(n * sizeof(double)) : NULL;
		MPI_Gather(&mean, 1, MPI_DOUBLE, means, 1, MPI_DOUBLE, 0, MPI_COMM_WORLD);
		check(&c);
		if (rank == 0) {
			double sum = 0, lo = means[0], hi = means[0];
			for (int r = 0; r < n; r++) {
				sum += means[r];
				if (means[r] < lo)
					lo = means[r];
				if (means[r] > hi)
					hi = means[r];
			}
			printf("result op=%s n=%d size=%ld iters=%ld avg_us=%.2f min_us=%.2f max_us=%.2f\n", op, n, c.size, k,
			       sum / n, lo, hi);
			fflush(stdout);
			free(means);
		}
	}
}

static int parse_sizes(const char *arg, long *sizes, int max) {
	int k = 0;
	const char *colon = strchr(arg, ':');
	if (colon) {
		long lo = atol(arg), hi = atol(colon + 1);
		if (lo < 1 || hi < lo)
			return -1;
		for (long x = lo; x <= hi && k < max; x *= 2)
			sizes[k++] = x;
		return k;
	}
	char *copy = strdup(arg), *save = NULL;
	for (char *f = strtok_r(copy, ",", &save); f && k < max; f = strtok_r(NULL, ",", &save))
		sizes[k++] = atol(f);
	free(copy);
	return k;
}

int main(int argc, char **argv) {
	MPI_Init(&argc, &argv);
	MPI_Comm_rank(MPI_COMM_WORLD, &rank);
	MPI_Comm_size(MPI_COMM_WORLD, &n);
	const char *ops = "all";
	long sizes[64] = {8};
	int nsizes = 1;
	long iters = 100;
	int warmup = 3;
	double budget = 0;
	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "-op"))
			ops = argv[i + 1];
		else if (!strcmp(argv[i], "-sizes")) {
			if ((nsizes = parse_sizes(argv[i + 1], sizes, 64)) < 1)
				die("bad -sizes");
		} else if (!strcmp(argv[i], "-iters"))
			iters = atol(argv[i + 1]);
		else if (!strcmp(argv[i], "-warmup"))
			warmup = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "-budget"))
			budget = atof(argv[i + 1]);
		else
			die("unknown flag");
	}
	if (iters < 1 || warmup < 0)
		die("-iters must be at least 1, -warmup not negative");
	for (int o = 0; o < nops; o++) {
		const char *op = ops_all[o];
		if (strcmp(ops, "all")) {
			/* ops is a comma-separated list: is op in it? */
			size_t l = strlen(op);
			const char *p = ops;
			int found = 0;
			while ((p = strstr(p, op))) {
				if ((p == ops || p[-1] == ',') && (p[l] == 0 || p[l] == ','))
					found = 1;
				p += l;
			}
			if (!found)
				continue;
		}
		sweep(op, sizes, nsizes, iters, warmup, budget);
	}
	MPI_Finalize();
	return 0;
}
