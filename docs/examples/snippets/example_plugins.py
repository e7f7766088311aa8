# Both worked examples at work: the flockq scheduler on a "cluster" whose home directory is
# mounted on this machine (the sharedfs transport; here a directory below HOME plays it).
import json
import sys
from pathlib import Path

from expyre import config
from expyre.func import ExPyRe

mounted_home = Path.home() / 'cluster-home'
mounted_home.mkdir(exist_ok=True)
(Path.home() / '.expyre').mkdir(exist_ok=True)
(Path.home() / '.expyre' / 'config.json').write_text(json.dumps({'systems': {
    'mounted': {'host': str(mounted_home), 'transport': 'sharedfs', 'scheduler': 'flockq',
                'partitions': {'serial': {'num_cores': 1, 'max_time': '24h'}}},
}}))
config.init()

jobs = [ExPyRe(f'cube_{i}', function=lambda n: n ** 3, args=[i]) for i in range(3)]
for xpr in jobs:
    # python_cmd: the "cluster" is this machine, so use this Python (it has cloudpickle)
    xpr.start(resources={'max_time': '5m', 'num_cores': 1}, system_name='mounted', python_cmd=sys.executable)
cubes = [xpr.get_results(check_interval=0.5)[0] for xpr in jobs]
assert cubes == [0, 1, 8]
print(cubes, 'run in', sorted(p.name for p in (mounted_home / 'run_expyre').iterdir()))
