# Restarting: an identical ExPyRe(...) call re-attaches to the job already in the jobs database.
from expyre import config
from expyre.func import ExPyRe


def run(x):
    xpr = ExPyRe('square', function=lambda v: v * v, args=[x])
    xpr.start(resources={'max_time': '10m', 'num_cores': 1}, system_name='local', partial_node=True)
    value = xpr.get_results(check_interval=1)[0]
    return xpr, value


first, value = run(7)
# the "restarted script": same name, function and arguments -> the same job, not a new one
again, value_again = run(7)
assert again.id == first.id and again.recreated and value_again == value == 49
first.mark_processed()

for row in config.db.jobs(name='square'):
    print(row['id'], row['status'], row['system'])
