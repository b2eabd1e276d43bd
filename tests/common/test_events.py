import json
import time
from datetime import datetime

import boto3
import pytest
from boto3.dynamodb.types import Binary

from pipeline_common.events import (
    EventError,
    S3Object,
    client_image,
    s3_objects,
    sqs_batch_response,
    stream_batch_response,
    stream_record,
)

KEY = "in/sales 2024/ünï+code.csv"


def _s3_record(key: str = "in/sales+2024/%C3%BCn%C3%AF%2Bcode.csv") -> dict:
    return {
        "eventSource": "aws:s3",
        "eventName": "ObjectCreated:Put",
        "s3": {
            "bucket": {"name": "landing"},
            "object": {"key": key, "size": 12, "eTag": "abc", "versionId": "v1", "sequencer": "0A"},
        },
    }


def test_plain_s3_event_with_url_encoded_key():
    [obj] = s3_objects({"Records": [_s3_record()]})
    assert obj == S3Object("landing", KEY, "v1", "abc", 12, "ObjectCreated:Put", "0A")
    assert obj.version == "v1"


def test_sqs_sns_s3_nesting_is_unwrapped():
    sns_envelope = {"Type": "Notification", "Message": json.dumps({"Records": [_s3_record()]})}
    sqs_event = {"Records": [{"eventSource": "aws:sqs", "messageId": "m1", "body": json.dumps(sns_envelope)}]}
    assert [o.key for o in s3_objects(sqs_event)] == [KEY]


def test_sqs_s3_and_sns_s3_are_unwrapped():
    sqs_event = {"Records": [{"eventSource": "aws:sqs", "body": json.dumps({"Records": [_s3_record()]})}]}
    sns_event = {"Records": [{"EventSource": "aws:sns", "Sns": {"Message": json.dumps({"Records": [_s3_record()]})}}]}
    assert s3_objects(sqs_event)[0].key == KEY
    assert s3_objects(sns_event)[0].key == KEY


def test_test_event_is_ignored():
    body = json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "landing"})
    assert s3_objects({"Records": [{"eventSource": "aws:sqs", "body": body}]}) == []


def test_version_falls_back_to_etag():
    record = _s3_record()
    del record["s3"]["object"]["versionId"]
    assert s3_objects({"Records": [record]})[0].version == "abc"


@pytest.mark.parametrize("body", ["not json", json.dumps({"hello": 1}), json.dumps([1])])
def test_unrecognised_bodies_raise(body):
    with pytest.raises(EventError):
        s3_objects({"Records": [{"eventSource": "aws:sqs", "body": body}]})


def test_real_moto_notification_through_sns_and_sqs(aws):
    """The envelope moto (like AWS) produces for S3 -> SNS -> SQS, with a key needing encoding."""
    s3, sns, sqs = boto3.client("s3"), boto3.client("sns"), boto3.client("sqs")
    s3.create_bucket(Bucket="landing")
    topic = sns.create_topic(Name="t")["TopicArn"]
    queue = sqs.create_queue(QueueName="q")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    s3.put_bucket_notification_configuration(
        Bucket="landing",
        NotificationConfiguration={"TopicConfigurations": [{"TopicArn": topic, "Events": ["s3:ObjectCreated:*"]}]},
    )
    s3.put_object(Bucket="landing", Key=KEY, Body=b"a,b\n1,2\n")
    messages = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not any(s3_objects({"Records": [_sqs(m)]}) for m in messages):
        messages += sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])
    objects = [o for m in messages for o in s3_objects({"Records": [_sqs(m)]})]
    assert [(o.bucket, o.key, o.size) for o in objects] == [("landing", KEY, 8)]
    # The arrival time S3 stamped on the event, to the millisecond (the CDC lake partitions by it).
    assert datetime.fromisoformat(objects[0].event_time).tzinfo is not None


def test_event_time_is_kept_as_sent():
    record = {**_s3_record(), "eventTime": "2026-03-01T23:59:59.123Z"}
    assert s3_objects({"Records": [record]})[0].event_time == "2026-03-01T23:59:59.123Z"
    assert s3_objects({"Records": [_s3_record()]})[0].event_time is None


def _sqs(message: dict) -> dict:
    return {"eventSource": "aws:sqs", "messageId": message["MessageId"], "body": message["Body"]}


def test_sqs_batch_reports_only_failed_messages():
    records = [{"messageId": f"m{i}", "body": str(i)} for i in range(4)]

    def process(record):
        if int(record["body"]) % 2:
            raise ValueError("odd")

    assert sqs_batch_response(records, process) == {
        "batchItemFailures": [{"itemIdentifier": "m1"}, {"itemIdentifier": "m3"}]
    }


def _stream(seq: str, event: str = "INSERT") -> dict:
    return {
        "eventSource": "aws:dynamodb",
        "eventName": event,
        "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/t/stream/x",
        "dynamodb": {
            "SequenceNumber": seq,
            "Keys": {"pk": {"S": "a"}},
            "NewImage": {"pk": {"S": "a"}, "n": {"N": "1.5"}, "tags": {"SS": ["x"]}},
        },
    }


def test_stream_record_is_deserialised():
    record = stream_record(_stream("100"))
    assert record.event_name == "INSERT"
    assert record.keys == {"pk": "a"}
    assert record.new_image == {"pk": "a", "n": 1.5, "tags": {"x"}}
    assert record.old_image is None
    with pytest.raises(EventError):
        stream_record({"eventSource": "aws:sqs"})


# A record as Lambda delivers it from a table keyed by a binary attribute (the shape of AWS's
# example event): binary values are base64 text in Lambda's JSON, at the top level, in sets, and
# nested in maps and lists.
BINARY_STREAM_EVENT = json.loads(
    """
{
  "Records": [
    {
      "eventID": "7de3041dd709b024af6f29e4fa13d34c",
      "eventName": "MODIFY",
      "eventVersion": "1.1",
      "eventSource": "aws:dynamodb",
      "awsRegion": "us-east-1",
      "dynamodb": {
        "ApproximateCreationDateTime": 1479499740,
        "Keys": {"Id": {"B": "AAEC/w=="}},
        "NewImage": {
          "Id": {"B": "AAEC/w=="},
          "Thumbnails": {"BS": ["iVBORw==", "R0lGOA=="]},
          "Meta": {"M": {"Checksum": {"B": "3q2+7w=="}, "Parts": {"L": [{"B": "AQ=="}, {"N": "2"}]}}},
          "Title": {"S": "raw bytes"}
        },
        "OldImage": {"Id": {"B": "AAEC/w=="}, "Title": {"S": "before"}},
        "SequenceNumber": "13021600000000001596893679",
        "SizeBytes": 112,
        "StreamViewType": "NEW_AND_OLD_IMAGES"
      },
      "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/Images/stream/2016-11-16T20:42:48.104"
    }
  ]
}
"""
)


def test_stream_record_reads_binary_attributes_of_a_lambda_event():
    (raw,) = BINARY_STREAM_EVENT["Records"]
    record = stream_record(raw)
    assert record.event_name == "MODIFY" and record.sequence_number == "13021600000000001596893679"
    assert record.keys == {"Id": Binary(b"\x00\x01\x02\xff")}
    assert record.new_image == {
        "Id": Binary(b"\x00\x01\x02\xff"),
        "Thumbnails": {Binary(b"\x89PNG"), Binary(b"GIF8")},
        "Meta": {"Checksum": Binary(b"\xde\xad\xbe\xef"), "Parts": [Binary(b"\x01"), 2]},
        "Title": "raw bytes",
    }
    assert record.old_image == {"Id": Binary(b"\x00\x01\x02\xff"), "Title": "before"}


def test_client_image_turns_lambda_base64_into_the_bytes_boto3_sends():
    image = client_image(BINARY_STREAM_EVENT["Records"][0]["dynamodb"]["NewImage"])
    assert image == {
        "Id": {"B": b"\x00\x01\x02\xff"},
        "Thumbnails": {"BS": [b"\x89PNG", b"GIF8"]},
        "Meta": {"M": {"Checksum": {"B": b"\xde\xad\xbe\xef"}, "Parts": {"L": [{"B": b"\x01"}, {"N": "2"}]}}},
        "Title": {"S": "raw bytes"},
    }
    assert client_image(image) == image  # bytes (a GetRecords image) stay as they are
    with pytest.raises(EventError, match="binary attribute 'Id' is not base64"):
        client_image({"Id": {"B": "not base64!"}})
    with pytest.raises(EventError, match="attribute 'Id' is not a DynamoDB attribute value"):
        client_image({"Id": "plain"})


def test_stream_batch_stops_at_first_failure_and_reports_its_sequence():
    seen = []

    def process(record):
        seen.append(record["dynamodb"]["SequenceNumber"])
        if record["dynamodb"]["SequenceNumber"] == "2":
            raise RuntimeError("boom")

    response = stream_batch_response([_stream("1"), _stream("2"), _stream("3")], process)
    assert response == {"batchItemFailures": [{"itemIdentifier": "2"}]}
    assert seen == ["1", "2"]
