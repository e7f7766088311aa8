"""The seed example from expyre's documentation, run on the built-in default system ``local``.

With no config file anywhere, expyre provides the system ``local`` (the ``direct`` scheduler on
this machine, one partition ``regular`` with all its cores), so this runs with no cluster. On a
cluster, change ``system_name`` to a system from your ``~/.expyre/config.json``.
"""
import numpy as np

from expyre.func import ExPyRe

# input for function
array_to_sum = np.ones((100, 50))

# create a task to sum array over axis=1
xpr = ExPyRe('test_task', function=np.sum, args=[array_to_sum], kwargs={'axis': 1})

# resources: run for max 1 hour on 1 node, on a regular partition node
res = {'max_time': '1h', 'num_nodes': 1, 'partitions': 'regular'}

# submit job
xpr.start(resources=res, system_name='local')

# gather results
try:
    array_sum, stdout, stderr = xpr.get_results()
    assert np.max(np.abs(array_sum - [50.0] * 100)) == 0.0
    print(f'job {xpr.id} summed the array on system {xpr.system_name}: {array_sum[:5]} ...')
except TimeoutError:
    print('job did not run in alloted time')

# mark as processed in jobs db in case of restarts
xpr.mark_processed()
