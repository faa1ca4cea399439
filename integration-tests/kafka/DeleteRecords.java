// Deletes a partition's records before an offset (Kafka's DeleteRecords: the log start offset moves
// there), for tests of a group whose committed offset is below it. node-rdkafka has no binding for it.
// java -cp '<broker jars>/*' DeleteRecords.java BOOTSTRAP TOPIC PARTITION OFFSET
import java.util.Map;
import java.util.Properties;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.RecordsToDelete;
import org.apache.kafka.common.TopicPartition;

public class DeleteRecords {
  public static void main(String[] args) throws Exception {
    Properties properties = new Properties();
    properties.put("bootstrap.servers", args[0]);
    try (Admin admin = Admin.create(properties)) {
      TopicPartition partition = new TopicPartition(args[1], Integer.parseInt(args[2]));
      long low = admin.deleteRecords(Map.of(partition, RecordsToDelete.beforeOffset(Long.parseLong(args[3])))).lowWatermarks().get(partition).get().lowWatermark();
      System.out.println(low);
    }
  }
}
