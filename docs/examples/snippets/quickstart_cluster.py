# Quickstart, second run: the same call on the system "remote" of ~/.expyre/config.json.
import numpy as np

from expyre.func import ExPyRe

array_to_sum = np.ones((100, 50))
xpr = ExPyRe('test_task', function=np.sum, args=[array_to_sum], kwargs={'axis': 1})

# resources: at most 1 hour, 1 whole node, on a partition whose name matches "regular"
res = {'max_time': '1h', 'num_nodes': 1, 'partitions': 'regular'}
xpr.start(resources=res, system_name='remote')

try:
    array_sum, stdout, stderr = xpr.get_results(timeout='2h', check_interval=1)
    assert np.max(np.abs(array_sum - [50.0] * 100)) == 0.0
except TimeoutError:
    print('job did not run in the allotted time')
else:
    # the result was used: `xpr rm -c -s processed` may now delete the job's files. A processed
    # job is not re-attached: running this script again submits a new job (see restart rules)
    xpr.mark_processed()
