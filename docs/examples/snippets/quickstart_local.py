# Quickstart, first run: the default system "local" (this machine, no config file needed).
import numpy as np

from expyre.func import ExPyRe

array_to_sum = np.ones((100, 50))
xpr = ExPyRe('test_task', function=np.sum, args=[array_to_sum], kwargs={'axis': 1})

# "local" has one partition, "regular", with all the cores of this machine
xpr.start(resources={'max_time': '1h', 'num_nodes': 1}, system_name='local')

array_sum, stdout, stderr = xpr.get_results(check_interval=1)
assert np.max(np.abs(array_sum - [50.0] * 100)) == 0.0
xpr.mark_processed()
print('sum of each row:', array_sum[:3], '...')
