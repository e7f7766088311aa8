# Many calls: an Executor maps a function over inputs, each call (or chunk of calls) one job.
import concurrent.futures

from expyre import ExPyRe, Executor, start_many


def energy(n_atoms, spacing):
    if spacing <= 0:
        raise ValueError(f'spacing must be positive, got {spacing}')
    return -n_atoms / spacing


resources = {'max_time': '10m', 'num_cores': 1}
with Executor('local', resources=resources, partial_node=True, check_interval=1) as executor:
    # results in the order of the inputs; all 20 calls are staged and submitted together
    energies = list(executor.map(energy, range(1, 21), [1.5] * 20))
    # 100 calls packed 25 to a job: 4 jobs
    more = list(executor.map(energy, range(100), [2.0] * 100, chunksize=25))

    # futures work with concurrent.futures.wait and as_completed
    futures = [executor.submit(energy, 8, spacing) for spacing in (1.0, 2.0, -1.0)]
    for future in concurrent.futures.as_completed(futures):
        if future.exception() is not None:
            print(future.id, 'raised', repr(future.exception()))   # the function's own ValueError
        else:
            print(future.id, 'returned', future.result())

assert energies[:2] == [-1 / 1.5, -2 / 1.5] and len(more) == 100

# ExPyRe objects of your own, started together (one transfer), then gathered one by one
xprs = [ExPyRe('energy', function=energy, args=[n, 1.0]) for n in range(5)]
start_many(xprs, resources, 'local', partial_node=True)
print([xpr.get_results(check_interval=1)[0] for xpr in xprs])
