package mpi

// WinWaiting returns the number of Locks waiting at this rank's side of w.
func WinWaiting[T Number](w *Win[T]) int { return int(w.srv.nwaiting.Load()) }
