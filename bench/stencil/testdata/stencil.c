/* stencil.c: bench/stencil's program in C on MPI, step for step the same
 * (two MPI_Sendrecv of one double, a Jacobi step, an MPI_Allreduce of the
 * residual), for make bench's side-by-side figures:
 *
 *   mpicc -O2 -o stencil stencil.c -lm
 *   mpirun -n 2 ./stencil -points 1000 -steps 2000
 */
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
	int points = 1000, steps = 2000, warmup = 100, rank, size;
	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "-points")) points = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "-steps")) steps = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "-warmup")) warmup = atoi(argv[i + 1]);
	}
	MPI_Init(&argc, &argv);
	MPI_Comm_rank(MPI_COMM_WORLD, &rank);
	MPI_Comm_size(MPI_COMM_WORLD, &size);
	double *u = calloc(points + 2, sizeof *u), *v = calloc(points + 2, sizeof *v);
	for (int i = 1; i <= points; i++) u[i] = sin((double)(rank * points + i) / 100);
	int left = (rank + size - 1) % size, right = (rank + 1) % size;
	double res = 0, t0 = 0;
	for (int s = 0; s < warmup + steps; s++) {
		if (s == warmup) {
			MPI_Barrier(MPI_COMM_WORLD);
			t0 = MPI_Wtime();
		}
		MPI_Sendrecv(&u[points], 1, MPI_DOUBLE, right, 1, &u[0], 1, MPI_DOUBLE, left, 1, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
		MPI_Sendrecv(&u[1], 1, MPI_DOUBLE, left, 2, &u[points + 1], 1, MPI_DOUBLE, right, 2, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
		double local = 0;
		for (int i = 1; i <= points; i++) {
			v[i] = u[i] + 0.25 * (u[i - 1] - 2 * u[i] + u[i + 1]);
			double d = v[i] - u[i];
			local += d * d;
		}
		double *t = u;
		u = v;
		v = t;
		MPI_Allreduce(&local, &res, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
	}
	double us = (MPI_Wtime() - t0) * 1e6 / steps;
	if (rank == 0) printf("result us_per_step=%.3f residual=%.6e\n", us, res);
	MPI_Finalize();
	return 0;
}
