# How a project's _expyre directory overrides the user's ~/.expyre, key by key.
import json
import os
import shutil
from pathlib import Path

from expyre import config

examples = Path(os.environ['EXPYRE_DOCS_EXAMPLES'])  # docs/examples, set by the test runner
home = Path.home()
(home / '.expyre').mkdir(exist_ok=True)
shutil.copy(examples / 'config' / 'config.json', home / '.expyre' / 'config.json')
project = home / 'project'
(project / '_expyre').mkdir(parents=True, exist_ok=True)
shutil.copy(examples / 'config' / 'project-override.json', project / '_expyre' / 'config.json')
os.chdir(project)

config.init()
remote = config.systems['remote']
print([str(p.relative_to(home)) for p in config.config_files])
print(sorted(config.systems))        # "kerberos" was removed by the project's null; "local" is built in
print(remote.commands)               # replaced as a whole: lists are not merged
print(sorted(remote.partitions))     # "large-mem" was removed with "_DELETE_"
print(remote.header)                 # still the user's
assert sorted(config.systems) == ['local', 'remote'] and list(remote.partitions) == ['regular']
print(json.dumps(config.describe_systems()[0]['sources'], indent=1)[:300])
