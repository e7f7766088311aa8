# How Resources picks a partition, without submitting anything.
from expyre.resources import NoMatchingPartitionError, Resources

partitions = {  # as System.partitions holds them: seconds and kB
    'regular':   {'num_cores': 16, 'max_time': 168 * 3600, 'max_mem': 50_000_000},
    'large-mem': {'num_cores': 32, 'max_time': 168 * 3600, 'max_mem': 200_000_000},
    'debug':     {'num_cores': 16, 'max_time': 3600, 'max_mem': 50_000_000},
}

# 32 cores fill two regular nodes (or one large-mem node) exactly: the first such partition wins
print(Resources(max_time='4h', num_cores=32).find_nodes(partitions))
# a time limit of 2 h rules out debug; the pattern rules out large-mem
print(Resources(max_time='2h', num_nodes=2, partitions='regular|debug').find_nodes(partitions))
# 100 GB per node only fits large-mem
print(Resources(max_time='1h', num_nodes=1, max_mem_tot='100GB').find_nodes(partitions))
# 8 cores do not fill a node: refused unless partial_node=True
try:
    Resources(max_time='1h', num_cores=8).find_nodes(partitions)
except NoMatchingPartitionError as exc:
    print('refused:', exc)
print(Resources(max_time='1h', num_cores=8).find_nodes(partitions, partial_node=True))
